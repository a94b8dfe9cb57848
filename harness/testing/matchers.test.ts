import { describe, expect, it } from 'vitest';
import './setup.js';
import type { ProbeResult } from '../probe/probe.js';
import type { Timeline, TimelinePacket } from '../probe/timeline.js';

const T0 = Date.UTC(2024, 0, 1, 12, 0, 0);

const seen: ProbeResult = {
  from: 'alice/frontend-1',
  to: '8.8.8.8',
  proto: 'udp',
  port: 7007,
  observedSource: '192.168.1.100',
  observedPort: 40001,
  replyReceived: true,
  rttMs: 1.2,
  observedBy: 'internet',
  evidence: 'reply',
};
const lost: ProbeResult = {
  from: 'default/client-1',
  to: '8.8.8.8',
  proto: 'tcp',
  port: 443,
  observedSource: '10.10.10.2',
  observedBy: 'internet',
  evidence: 'capture',
  replyReceived: false,
};
const nothing: ProbeResult = { from: 'default/client-1', to: '192.168.1.77', proto: 'icmp', replyReceived: false, error: 'timeout' };

/** seq 1..n every 20 ms; `lost` seqs unanswered; `src(seq)` the observed source (none when undefined). */
function timeline(n: number, lostSeqs: number[], src: (seq: number) => string | undefined = () => '192.168.1.100'): Timeline {
  const packets: TimelinePacket[] = Array.from({ length: n }, (_, i) => {
    const seq = i + 1;
    const s = src(seq);
    return { seq, t: T0 + i * 20, replied: !lostSeqs.includes(seq), observedSources: s ? [s] : [] };
  });
  return { from: 'alice/frontend-1', to: '8.8.8.8', proto: 'udp', port: 7007, intervalMs: 20, packets, unattributed: [] };
}

/** The message a failing assertion throws. */
function failure(fn: () => void): string {
  try {
    fn();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('the assertion passed');
}

describe('toBeSeenFrom', () => {
  it('passes on the observed source, and .not on another', () => {
    expect(seen).toBeSeenFrom('192.168.1.100');
    expect(seen).not.toBeSeenFrom('192.168.1.1');
  });
  it('says what was expected, what was observed, with evidence, where, and the reply', () => {
    const m = failure(() => expect(lost).toBeSeenFrom('192.168.1.1'));
    expect(m).toContain('expected the far end to observe 192.168.1.1 for tcp default/client-1 -> 8.8.8.8:443');
    expect(m).toContain('it observed 10.10.10.2 (evidence: capture, at: internet); reply NOT received');
  });
  it('says when nothing arrived', () => {
    const m = failure(() => expect(nothing).toBeSeenFrom('192.168.1.1'));
    expect(m).toContain('it observed nothing (no packet arrived); reply NOT received (error: timeout)');
  });
  it('negated failure says it did observe it', () => {
    const m = failure(() => expect(seen).not.toBeSeenFrom('192.168.1.100'));
    expect(m).toContain('expected the far end not to observe 192.168.1.100');
    expect(m).toContain('reply received in 1.2 ms');
  });
  it('refuses something that is not a ProbeResult', () => {
    expect(() => expect({ foo: 1 }).toBeSeenFrom('1.2.3.4')).toThrow(/toBeSeenFrom: expected a ProbeResult/);
  });
  it('a probe whose connection was seen with several sources is seen from none of them alone', () => {
    const both: ProbeResult = { ...lost, observedSource: '192.168.1.100', observedSources: ['192.168.1.100', '10.10.10.2'] };
    expect(both).not.toBeSeenFrom('192.168.1.100');
    expect(both).not.toBeSeenFrom('10.10.10.2');
    const m = failure(() => expect(both).toBeSeenFrom('192.168.1.100'));
    expect(m).toContain('it observed 192.168.1.100 (evidence: capture, at: internet, its packets seen from 192.168.1.100 and 10.10.10.2)');
    // one source listed (or none): as before
    expect({ ...lost, observedSources: ['10.10.10.2'] }).toBeSeenFrom('10.10.10.2');
  });
});

describe('toReachPod / toGetReply', () => {
  it('pass when the reply came back', () => {
    expect(seen).toReachPod();
    expect(seen).toGetReply();
    expect(lost).not.toGetReply();
  });
  it('fail with the pod, the flow and what the far end saw', () => {
    const m = failure(() => expect(lost).toReachPod());
    expect(m).toContain('expected the reply of tcp default/client-1 -> 8.8.8.8:443 to reach default/client-1, it did not');
    expect(m).toContain('the far end observed 10.10.10.2 (evidence: capture, at: internet)');
    expect(failure(() => expect(nothing).toGetReply())).toContain('to reach the sender, it did not; the far end observed nothing');
  });
});

describe('toBeObservedOnlyFrom', () => {
  it('ProbeResult: its source is one of the list', () => {
    expect(seen).toBeObservedOnlyFrom(['192.168.1.100', '192.168.1.101']);
    expect(failure(() => expect(nothing).toBeObservedOnlyFrom(['192.168.1.1']))).toContain('it observed nothing');
  });
  it('ProbeResult seen with several sources: each of them must be in the list', () => {
    const both: ProbeResult = { ...lost, observedSource: '192.168.1.100', observedSources: ['192.168.1.100', '10.10.10.2'] };
    expect(both).not.toBeObservedOnlyFrom(['192.168.1.100']);
    expect(failure(() => expect(both).toBeObservedOnlyFrom(['192.168.1.100']))).toContain('its packets seen from 192.168.1.100 and 10.10.10.2');
    expect(both).toBeObservedOnlyFrom(['192.168.1.100', '10.10.10.2']);
  });
  it('Timeline: every source in the list, and something observed', () => {
    expect(timeline(10, [])).toBeObservedOnlyFrom(['192.168.1.100']);
    const mixed = timeline(10, [], (s) => (s === 4 ? '192.168.1.1' : '192.168.1.100'));
    const m = failure(() => expect(mixed).toBeObservedOnlyFrom(['192.168.1.100']));
    expect(m).toContain('it was also observed from 192.168.1.1 (sources: 192.168.1.100 x9, 192.168.1.1 x1)');
    const silent = timeline(3, [1, 2, 3], () => undefined);
    expect(failure(() => expect(silent).toBeObservedOnlyFrom(['192.168.1.100']))).toContain('the far end observed nothing');
  });
});

describe('toFailOverWithin', () => {
  it('passes when the longest outage is within the bound', () => {
    // seq 5-9 lost: from seq 4 (t=60) to seq 10 (t=180): 120 ms
    const t = timeline(20, [5, 6, 7, 8, 9]);
    expect(t).toFailOverWithin(120);
    expect(t).not.toFailOverWithin(100);
    expect(timeline(5, [])).toFailOverWithin(0);
  });
  it('fails with the outages: seq ranges, lost counts, times and durations', () => {
    const t = timeline(100, [...Array.from({ length: 60 }, (_, i) => 21 + i), 90]);
    const m = failure(() => expect(t).toFailOverWithin(1000));
    expect(m).toContain('expected udp alice/frontend-1 -> 8.8.8.8:7007 (100 packets every 20 ms) to fail over within 1000 ms, its longest outage was 1220 ms');
    expect(m).toContain('seq 21-80 (60 lost) from +0.400 s (12:00:00.400) to +1.580 s (12:00:01.580): 1220 ms');
    expect(m).toContain('seq 90-90 (1 lost) from +1.780 s (12:00:01.780) to +1.780 s (12:00:01.780): 40 ms');
  });
  it('fails when traffic never resumed, however short the gap', () => {
    const m = failure(() => expect(timeline(10, [9, 10])).toFailOverWithin(5000));
    expect(m).toContain('traffic had not resumed when the probe stopped');
    expect(m).toContain('seq 9-10 (2 lost)');
    expect(m).toContain('never resumed');
  });
  it('fails when nothing was ever answered or nothing sent', () => {
    expect(failure(() => expect(timeline(3, [1, 2, 3])).toFailOverWithin(5000))).toContain('no packet was ever answered');
    expect(failure(() => expect(timeline(0, [])).toFailOverWithin(5000))).toContain('the probe sent no packet');
  });
});

describe('toHaveNoLeaks', () => {
  it('passes when every source is allowed (lost packets seen nowhere are not leaks)', () => {
    expect(timeline(10, [3, 4], (s) => (s === 3 || s === 4 ? undefined : '192.168.1.100'))).toHaveNoLeaks(['192.168.1.100']);
  });
  it('lists each leaked packet with seq, time and source', () => {
    const t = timeline(10, [5, 6], (s) => (s === 5 || s === 6 ? '192.168.1.1' : '192.168.1.100'));
    t.unattributed.push({ t: T0 + 130, p: 'udp', src: '10.10.10.1', dst: '8.8.8.8', sport: 5555 });
    const m = failure(() => expect(t).toHaveNoLeaks(['192.168.1.100']));
    expect(m).toContain(
      'expected no packet of udp alice/frontend-1 -> 8.8.8.8:7007 (10 packets every 20 ms) to be observed with a source other than 192.168.1.100; 3 leaked:',
    );
    expect(m).toContain('seq 5 at +0.080 s (12:00:00.080) seen from 192.168.1.1');
    expect(m).toContain('seq 6 at +0.100 s (12:00:00.100) seen from 192.168.1.1');
    expect(m).toContain('unmatched udp packet at +0.130 s (12:00:00.130) seen from 10.10.10.1:5555');
    expect(m).toContain('sources: 192.168.1.100 x8, 192.168.1.1 x2, 10.10.10.1 x1');
  });
  it('caps long lists', () => {
    const t = timeline(50, [], () => '192.168.1.1');
    expect(failure(() => expect(t).toHaveNoLeaks(['192.168.1.100']))).toContain('... and 30 more');
  });
  it('refuses a ProbeResult', () => {
    expect(() => expect(seen).toHaveNoLeaks(['1.2.3.4'])).toThrow(/toHaveNoLeaks: expected a Timeline/);
  });
});
