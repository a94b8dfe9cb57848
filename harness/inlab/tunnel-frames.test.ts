import { describe, expect, it } from 'vitest';
import { FRAME, FrameReader, encodeFrame } from './tunnel-frames.js';

describe('tunnel frames', () => {
  it('reassemble from chunks split at every byte offset', () => {
    const frames: [number, number, string][] = [
      [FRAME.OPEN, 1, ''],
      [FRAME.DATA, 1, 'GET / HTTP/1.1\r\n\r\n'],
      [FRAME.DATA, 7, 'x'.repeat(300)],
      [FRAME.END, 1, ''],
      [FRAME.CLOSE, 7, 'refused'],
    ];
    const wire = Buffer.concat(frames.map(([t, id, p]) => encodeFrame(t, id, p || undefined)));
    for (let cut = 0; cut <= wire.length; cut++) {
      const got: [number, number, string][] = [];
      const r = new FrameReader((t, id, p) => got.push([t, id, p.toString('utf8')]));
      r.push(wire.subarray(0, cut));
      r.push(wire.subarray(cut));
      expect(got).toEqual(frames);
    }
  });
});
