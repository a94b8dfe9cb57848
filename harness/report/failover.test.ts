import { describe, expect, it } from 'vitest';
import type { Timeline, TimelinePacket } from '../probe/timeline.js';
import { describeFailover, summarize } from './failover.js';

const T0 = 1_700_000_000_000;
const IP = '192.168.1.100';

/** A timeline from a pattern: "." answered (seen from IP), "x" lost, "L" lost but seen from the node IP (a leak). */
function timeline(pattern: string, unattributed: Timeline['unattributed'] = []): Timeline {
  const packets: TimelinePacket[] = [...pattern].map((c, seq) => ({
    seq,
    t: T0 + seq * 20,
    replied: c === '.',
    observedSources: c === '.' ? [IP] : c === 'L' ? ['192.168.1.2'] : [],
  }));
  return { from: 'alice/frontend-1', to: '8.8.8.8', proto: 'udp', intervalMs: 20, packets, unattributed };
}

describe('summarize: the failover report', () => {
  it('the longest outage (the first of equals), its lost packets, and every outage', () => {
    const r = summarize(timeline('..xx..xxxx..xxxx..'));
    expect(r.outages.map((o) => [o.firstSeq, o.lost, o.durationMs])).toEqual([
      [2, 2, 60],
      [6, 4, 100],
      [12, 4, 100],
    ]);
    expect(r.longest?.firstSeq).toBe(6);
    expect(r).toMatchObject({ packets: 18, answered: 8, longestOutageMs: 100, longestLost: 4, neverAnswered: false, start: T0, sources: { [IP]: 8 } });
    expect(r.deliveryRatio).toBeCloseTo(8 / 18);
    expect(r.open).toBeUndefined();
    expect(r.leaks).toBeUndefined();
  });

  it('no outage: 0 ms, nothing lost', () => {
    const r = summarize(timeline('.....'), [IP]);
    expect(r).toMatchObject({ outages: [], longestOutageMs: 0, longestLost: 0, leaks: { count: 0, packets: [], unattributed: [] }, allowed: [IP] });
    expect(r.longest).toBeUndefined();
  });

  it('an outage still running at the end is open; a timeline never answered says so', () => {
    expect(summarize(timeline('...xxx')).open?.firstSeq).toBe(3);
    const none = summarize(timeline('xxx'));
    expect(none).toMatchObject({ neverAnswered: true, answered: 0, longestLost: 3 });
    const empty = summarize(timeline(''));
    expect(empty).toMatchObject({ packets: 0, deliveryRatio: 0, neverAnswered: true, longestOutageMs: 0 });
    expect(empty.start).toBeUndefined();
  });

  it('leaks: packets and unmatched observations with a source outside the allowed ones', () => {
    const t = timeline('..LxL..', [
      { t: T0 + 50, p: 'udp', src: '10.10.10.1', dst: '8.8.8.8' },
      { t: T0 + 60, p: 'udp', src: IP, dst: '8.8.8.8' },
    ]);
    const r = summarize(t, [IP]);
    expect(r.leaks!.count).toBe(3);
    expect(r.leaks!.packets.map((p) => p.seq)).toEqual([2, 4]);
    expect(r.leaks!.unattributed.map((o) => o.src)).toEqual(['10.10.10.1']);
    expect(r.sources).toEqual({ [IP]: 5, '192.168.1.2': 2, '10.10.10.1': 1 });
    expect(summarize(t, [IP, '192.168.1.2', '10.10.10.1']).leaks!.count).toBe(0);
  });

  it('describeFailover: one line', () => {
    expect(describeFailover(summarize(timeline('..xx..'), [IP]))).toBe(`6 packets, longest outage 60 ms (2 lost/60 ms), sources {"${IP}":4}, leaked 0`);
    expect(describeFailover(summarize(timeline('...')))).toBe(`3 packets, longest outage 0 ms (none), sources {"${IP}":3}`);
  });
});
