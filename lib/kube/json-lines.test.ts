import { describe, expect, it } from 'vitest';
import { LineDecoder } from './json-lines.js';

describe('LineDecoder', () => {
  it('joins a line split over many chunks, with a character cut between two chunks', () => {
    const text = `{"a":"ä€😀 ${'x'.repeat(5000)} ü"}`;
    const bytes = Buffer.from(`${text}\n`, 'utf8');
    const cut = bytes.indexOf(Buffer.from('😀', 'utf8')) + 2; // inside the 4-byte character
    const d = new LineDecoder();
    expect(d.push(bytes.subarray(0, cut))).toEqual([]);
    const out: string[] = [];
    for (let o = cut; o < bytes.length; o += 7) out.push(...d.push(bytes.subarray(o, Math.min(o + 7, bytes.length))));
    expect(out).toEqual([text]);
    expect(d.pendingBytes).toBe(0);
  });

  it('returns every line a chunk ends, skips empty ones, and keeps the unfinished tail', () => {
    const d = new LineDecoder();
    expect(d.push(Buffer.from('one\n\n  two \r\nthr'))).toEqual(['one', 'two']);
    expect(d.pendingBytes).toBe(3);
    expect(d.push(Buffer.from('ee\n'))).toEqual(['three']);
  });
});
