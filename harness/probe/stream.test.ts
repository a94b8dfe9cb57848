import { describe, expect, it } from 'vitest';
import { TCP_FLAGS, type DecodedPacket } from '../pcap/pcap.js';
import type { ClientRecord } from '../inlab/protocol.js';
import { buildTimeline } from './timeline.js';
import { describeSegment, endpointsNotCaptured, resets, segmentLeaks, segmentsTo, streamOutcome, survivalReport } from './stream.js';

const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
const seg = (
  src: string,
  sport: number,
  dst = '8.8.8.8',
  dport = 7007,
  flags = TCP_FLAGS.ACK | TCP_FLAGS.PSH,
  direction: DecodedPacket['direction'] = 'unknown',
): DecodedPacket => ({
  t: T0,
  direction,
  ip: { src, dst, proto: 6, ttl: 62, tcp: { sport, dport, flags, payload: Buffer.alloc(0) } },
});

describe('segments at the far end', () => {
  it('keeps client-to-server segments of the flow, whatever their flags', () => {
    const s = segmentsTo(
      [
        seg('192.168.1.100', 40001),
        seg('192.168.1.100', 40001, '8.8.8.8', 7007, TCP_FLAGS.RST),
        seg('8.8.8.8', 7007, '192.168.1.100', 40001),
        seg('192.168.1.100', 1, '8.8.4.4'),
        seg('192.168.1.100', 1, '8.8.8.8', 80),
        seg('10.10.10.1', 5, '8.8.8.8', 7007, TCP_FLAGS.ACK, 'out'),
      ],
      '8.8.8.8',
      7007,
    );
    expect(s.map((x) => [x.src, x.sport, x.flags])).toEqual([
      ['192.168.1.100', 40001, TCP_FLAGS.ACK | TCP_FLAGS.PSH],
      ['192.168.1.100', 40001, TCP_FLAGS.RST],
    ]);
    expect(resets(s)).toHaveLength(1);
    expect(describeSegment(s[1]!)).toBe('12:00:00.000 192.168.1.100:40001 [RST]');
  });

  it('endpointsNotCaptured: the connections (as the replies name them) of which the capture has no segment', () => {
    const recs: ClientRecord[] = [1, 2, 3].map((seq) => ({
      seq,
      t: T0 + seq * 100,
      replied: true,
      conn: seq < 3 ? 1 : 2,
      localPort: seq < 3 ? 41000 : 41001,
      observedSource: '192.168.1.100',
      observedPort: seq < 3 ? 41000 : 52000,
    }));
    const t = buildTimeline({ from: 'alice/frontend-1', to: '8.8.8.8', proto: 'tcp', port: 7007, intervalMs: 100 }, recs, []);
    const s = segmentsTo([seg('192.168.1.100', 41000), seg('192.168.1.100', 41001)], '8.8.8.8', 7007);
    expect(endpointsNotCaptured(t, s)).toEqual(['192.168.1.100:52000']);
    expect(endpointsNotCaptured(t, [])).toEqual(['192.168.1.100:41000', '192.168.1.100:52000']);
    expect(endpointsNotCaptured(t, segmentsTo([seg('192.168.1.100', 41000), seg('192.168.1.100', 52000)], '8.8.8.8', 7007))).toEqual([]);
  });

  it('a segment with another source is a leak', () => {
    const s = segmentsTo([seg('192.168.1.100', 40001), seg('10.10.10.1', 40001), seg('192.168.1.1', 40001)], '8.8.8.8', 7007);
    const r = segmentLeaks(s, ['192.168.1.100']);
    expect(r.leaked.map((x) => x.src)).toEqual(['10.10.10.1', '192.168.1.1']);
    expect(r.sources).toEqual({ '192.168.1.100': 1, '10.10.10.1': 1, '192.168.1.1': 1 });
  });
});

describe('stream outcomes', () => {
  const recs = (n: number, lost: number[], patch: (s: number) => Partial<ClientRecord> = () => ({})): ClientRecord[] =>
    Array.from({ length: n }, (_, i) => ({
      seq: i + 1,
      t: T0 + i * 100,
      replied: !lost.includes(i + 1),
      conn: 1,
      localPort: 41000,
      ...(lost.includes(i + 1) ? {} : { observedSource: '192.168.1.100', observedPort: 41000 }),
      ...patch(i + 1),
    }));
  const meta = { from: 'alice/frontend-1', to: '8.8.8.8', proto: 'tcp' as const, port: 7007, intervalMs: 100 };

  it('summarizes survivors and losses with the reason', () => {
    const ok = streamOutcome('a', buildTimeline(meta, recs(10, [4, 5]), []));
    const lost = streamOutcome(
      'b',
      buildTimeline(
        meta,
        recs(10, [4, 5, 6, 7, 8, 9, 10], (s) => (s >= 6 ? { connectionError: 'ECONNRESET' } : {})),
        [],
      ),
    );
    expect(ok).toMatchObject({ survived: true, longestOutageMs: 300, lines: 10, endpoints: ['192.168.1.100:41000'], localPort: 41000 });
    expect(lost).toMatchObject({ survived: false, reason: 'connection 1 (local port 41000) broke with ECONNRESET at line 6' });
    const r = survivalReport([ok, lost]);
    expect(r).toMatchObject({ survived: 1, total: 2 });
    expect(r.text.split('\n')[0]).toBe('survived 1/2');
    expect(r.text).toContain(
      'LOST b (local 41000, seen as 192.168.1.100:41000, longest outage 800 ms): connection 1 (local port 41000) broke with ECONNRESET at line 6',
    );
    expect(() => streamOutcome('u', buildTimeline({ ...meta, proto: 'udp' }, [], []))).toThrow('u: not a stream timeline (start it with stream: true)');
  });
});
