import { describe, expect, it } from 'vitest';
import { segmentMatters, type ClientRecord, type Observation } from '../inlab/protocol.js';
import { TCP_FLAGS } from '../pcap/pcap.js';
import { buildTimeline, deliveryRatio, leaks, outages, sourceCounts, summarizeStream, type Timeline } from './timeline.js';

const T0 = 1_700_000_000_000;
const INTERVAL = 20;
const meta = (proto: 'tcp' | 'udp' | 'icmp') => ({
  from: 'default/client-1',
  to: '8.8.8.8',
  proto,
  intervalMs: INTERVAL,
  ...(proto === 'icmp' ? {} : { port: 7007 }),
});

/** Records for seq 1..n sent every INTERVAL ms; `lost` seqs got no reply. */
function recs(n: number, lost: number[] = [], extra: (seq: number) => Partial<ClientRecord> = () => ({})): ClientRecord[] {
  return Array.from({ length: n }, (_, i) => {
    const seq = i + 1;
    const replied = !lost.includes(seq);
    return { seq, t: T0 + i * INTERVAL, replied, ...(replied ? { rttMs: 1.5 } : {}), ...extra(seq) };
  });
}

const obs = (o: Partial<Observation> & Pick<Observation, 'p' | 'src'>): Observation => ({ t: T0, dst: '8.8.8.8', ...o });

describe('buildTimeline', () => {
  it('orders packets by seq and copies what the client saw', () => {
    const records = recs(3, [2], (seq) => (seq === 1 ? { observedSource: '192.168.1.1' } : {}));
    const t = buildTimeline(meta('udp'), [records[2]!, records[0]!, records[1]!], []);
    expect(t).toMatchObject(meta('udp'));
    expect(t.packets).toEqual([
      { seq: 1, t: T0, replied: true, rttMs: 1.5, replySource: '192.168.1.1', observedSources: ['192.168.1.1'] },
      { seq: 2, t: T0 + 20, replied: false, observedSources: [] },
      { seq: 3, t: T0 + 40, replied: true, rttMs: 1.5, observedSources: [] },
    ]);
    expect(t.unattributed).toEqual([]);
  });

  it('UDP: matches observations by the probe seq in the payload', () => {
    const t = buildTimeline(meta('udp'), recs(3, [2, 3]), [
      obs({ p: 'udp', src: '192.168.1.1', pseq: 1, tok: 'x' }),
      obs({ p: 'udp', src: '10.10.10.2', pseq: 2, tok: 'x' }), // left with the pod IP: no reply
      obs({ p: 'udp', src: '10.10.10.2', pseq: 2, tok: 'x' }), // duplicate: counted once
      obs({ p: 'udp', src: '192.168.1.1', pseq: 99 }), // no such packet
      obs({ p: 'udp', src: '192.168.1.1' }), // no seq at all
    ]);
    expect(t.packets.map((p) => p.observedSources)).toEqual([['192.168.1.1'], ['10.10.10.2'], []]);
    expect(t.unattributed.map((o) => o.pseq)).toEqual([99, undefined]);
  });

  it('ICMP: matches observations by the ICMP sequence', () => {
    const t = buildTimeline(meta('icmp'), recs(2, [2]), [
      obs({ p: 'icmp', src: '192.168.1.1', id: 5, seq: 1 }),
      obs({ p: 'icmp', src: '192.168.1.100', id: 5, seq: 2 }),
      obs({ p: 'icmp', src: '192.168.1.1', id: 5, seq: 3 }),
    ]);
    expect(t.packets.map((p) => p.observedSources)).toEqual([['192.168.1.1'], ['192.168.1.100']]);
    expect(t.unattributed).toHaveLength(1);
    expect(t.unattributed[0]!.seq).toBe(3);
  });

  it('TCP: matches SYNs (no payload) by the client local port, retransmissions included', () => {
    const t = buildTimeline(
      meta('tcp'),
      recs(3, [2], (seq) => ({ localPort: 40_000 + seq })),
      [
        obs({ p: 'tcp', src: '192.168.1.1', sport: 40_001, dport: 7007 }),
        obs({ p: 'tcp', src: '10.10.10.2', sport: 40_002, dport: 7007 }),
        obs({ p: 'tcp', src: '10.10.10.2', sport: 40_002, dport: 7007 }), // retransmitted SYN
        obs({ p: 'tcp', src: '192.168.1.1', sport: 40_003, dport: 7007 }),
        obs({ p: 'tcp', src: '192.168.1.1', sport: 50_000, dport: 7007 }), // source port rewritten by NAT
      ],
    );
    expect(t.packets.map((p) => p.observedSources)).toEqual([['192.168.1.1'], ['10.10.10.2'], ['192.168.1.1']]);
    expect(t.unattributed.map((o) => o.sport)).toEqual([50_000]);
  });

  it('local ports are only used for TCP; a UDP observation without pseq is not matched by port', () => {
    const t = buildTimeline(
      meta('udp'),
      recs(1, [], () => ({ localPort: 40_001 })),
      [obs({ p: 'udp', src: '192.168.1.1', sport: 40_001 })],
    );
    expect(t.packets[0]!.observedSources).toEqual([]);
    expect(t.unattributed).toHaveLength(1);
  });

  it("adds the reply's source when the capture missed the packet, without duplicating it", () => {
    const t = buildTimeline(
      meta('udp'),
      recs(2, [], () => ({ observedSource: '192.168.1.1' })),
      [obs({ p: 'udp', src: '192.168.1.1', pseq: 1 })],
    );
    expect(t.packets.map((p) => p.observedSources)).toEqual([['192.168.1.1'], ['192.168.1.1']]);
  });

  it('a packet seen with two sources (failover mid-retransmission) lists both, in order seen', () => {
    const t = buildTimeline(
      meta('tcp'),
      recs(1, [], () => ({ localPort: 40_001, observedSource: '192.168.1.100' })),
      [obs({ p: 'tcp', src: '192.168.1.1', sport: 40_001 }), obs({ p: 'tcp', src: '192.168.1.100', sport: 40_001 })],
    );
    expect(t.packets[0]!.observedSources).toEqual(['192.168.1.1', '192.168.1.100']);
  });

  describe('TCP: every segment of a connection, not only its SYN', () => {
    const { SYN, ACK, PSH, FIN, RST } = TCP_FLAGS;
    const seg = (src: string, sport: number, t: number, f: number) => obs({ p: 'tcp', src, sport, dport: 7007, t, f, k: 'tcp 8.8.8.8:7007' });
    const EGRESS = '192.168.1.100';

    it('one connection per packet: its segments with the right source are no leak, a segment with another one is, on that packet', () => {
      const records = recs(3, [], (seq) => ({ localPort: 40_000 + seq, observedSource: EGRESS }));
      const segments = [1, 2, 3].flatMap((seq) => {
        const t = T0 + (seq - 1) * INTERVAL;
        return [
          seg(EGRESS, 40_000 + seq, t + 0.2, SYN),
          seg(EGRESS, 40_000 + seq, t + 0.4, ACK),
          seg(EGRESS, 40_000 + seq, t + 0.5, ACK | PSH),
          seg(EGRESS, 40_000 + seq, t + 2, ACK | FIN),
        ];
      });
      const clean = buildTimeline(meta('tcp'), records, segments);
      expect(clean.packets.map((p) => p.observedSources)).toEqual([[EGRESS], [EGRESS], [EGRESS]]);
      expect(leaks(clean, [EGRESS])).toEqual({ packets: [], unattributed: [] });
      expect(sourceCounts(clean)).toEqual({ [EGRESS]: 3 });

      // packet 2's data segment left with the pod IP (its SYN and the rest did not)
      const leaky = buildTimeline(
        meta('tcp'),
        records,
        segments.map((o) => (o.sport === 40_002 && o.f === (ACK | PSH) ? { ...o, src: '10.10.10.2' } : o)),
      );
      expect(leaks(leaky, [EGRESS]).packets.map((p) => p.seq)).toEqual([2]);
      expect(leaky.packets[1]!.observedSources).toEqual([EGRESS, '10.10.10.2']);
      expect(leaky.unattributed).toEqual([]);
    });

    it('a stream: a mid-stream segment with another source is a leak on the line it followed, not on the first line', () => {
      const records = recs(6, [], () => ({ conn: 1, localPort: 40_001, observedSource: EGRESS, observedPort: 40_001 }));
      const observations = [
        seg(EGRESS, 40_001, T0 - 3, SYN),
        seg(EGRESS, 40_001, T0 - 2.5, ACK), // the handshake's ACK, before the first line: on line 1
        ...records.map((r) => seg(EGRESS, 40_001, r.t + 0.3, ACK | PSH)), // each line
        ...records.map((r) => seg(EGRESS, 40_001, r.t + 1.5, ACK)), // each reply's ACK
        seg('10.10.10.1', 40_001, T0 + 3 * INTERVAL + 0.3, ACK | PSH), // line 4 retransmitted with the pod IP (no NAT)
        seg('10.10.10.1', 40_001, T0 + 4 * INTERVAL - 4, ACK), // logged 4 ms before line 5's send time: within the +5 ms, line 5's
      ];
      const t = buildTimeline(meta('tcp'), records, observations);
      expect(t.packets.map((p) => p.observedSources)).toEqual([[EGRESS], [EGRESS], [EGRESS], [EGRESS, '10.10.10.1'], [EGRESS, '10.10.10.1'], [EGRESS]]);
      expect(leaks(t, [EGRESS]).packets.map((p) => p.seq)).toEqual([4, 5]);
      expect(t.stream!.survived).toBe(true); // the replies never said otherwise: only the capture did
    });

    it('a RST of a connection reused on the same local port goes to the packet sent last before it', () => {
      const records = recs(3, [], (seq) => ({ localPort: seq === 3 ? 40_001 : 40_000 + seq }));
      const t = buildTimeline(meta('tcp'), records, [
        seg(EGRESS, 40_001, T0 + 0.2, SYN),
        seg(EGRESS, 40_001, T0 + 2 * INTERVAL + 0.2, SYN),
        seg('10.10.10.2', 40_001, T0 + 2 * INTERVAL + 9, RST),
      ]);
      expect(t.packets.map((p) => p.observedSources)).toEqual([[EGRESS], [], [EGRESS, '10.10.10.2']]);
    });

    it('segments of a connection nothing matches: unattributed once per source and port, SYNs each', () => {
      const t = buildTimeline(
        meta('tcp'),
        recs(1, [], () => ({ localPort: 40_001 })),
        [
          seg(EGRESS, 51_000, T0, SYN),
          seg(EGRESS, 51_000, T0 + 1, SYN), // retransmitted
          seg(EGRESS, 51_000, T0 + 2, ACK),
          seg(EGRESS, 51_000, T0 + 3, ACK | PSH),
          seg('10.10.10.2', 51_000, T0 + 4, ACK | PSH),
          seg(EGRESS, 51_001, T0 + 5, ACK | FIN),
        ],
      );
      expect(t.unattributed.map((o) => [o.src, o.sport, o.f])).toEqual([
        [EGRESS, 51_000, SYN],
        [EGRESS, 51_000, SYN],
        [EGRESS, 51_000, ACK],
        ['10.10.10.2', 51_000, ACK | PSH],
        [EGRESS, 51_001, ACK | FIN],
      ]);
      expect(leaks(t, [EGRESS]).unattributed.map((o) => o.src)).toEqual(['10.10.10.2']);
    });

    it('reading only the segments that matter to the probe (segmentMatters, in the container) gives the same timeline', () => {
      const records = recs(4, [2], (seq) => ({ conn: 1, localPort: 40_001, ...(seq === 2 ? {} : { observedSource: EGRESS, observedPort: 40_001 }) }));
      const others = [40_002, 40_003, 51_000].flatMap((port, i) => [
        seg(EGRESS, port, T0 + i - 3, SYN),
        ...records.map((r) => seg(EGRESS, port, r.t + 0.1 * (i + 1), ACK | PSH)),
        seg(i === 2 ? '10.10.10.9' : EGRESS, port, T0 + 70, ACK),
      ]);
      const own = [seg(EGRESS, 40_001, T0 - 3, SYN), ...records.map((r) => seg(EGRESS, 40_001, r.t + 0.3, ACK | PSH)), seg('10.10.10.1', 40_001, T0 + 21, ACK)];
      const all = [...others, ...own].sort((a, b) => a.t - b.t);
      const flows = new Set<string>();
      const kept = all.filter((o) => segmentMatters(o, new Set([40_001]), flows));
      expect(kept.length).toBeLessThan(all.length);
      expect(buildTimeline(meta('tcp'), records, kept)).toEqual(buildTimeline(meta('tcp'), records, all));
      expect(leaks(buildTimeline(meta('tcp'), records, kept), [EGRESS]).unattributed.map((o) => o.src)).toEqual(['10.10.10.9']);
    });

    it('a SYN is still matched to the first packet of its connection, never to a later line', () => {
      const records = recs(3, [], () => ({ conn: 1, localPort: 40_001 }));
      const t = buildTimeline(meta('tcp'), records, [seg('10.10.10.1', 40_001, T0 + 2 * INTERVAL + 1, SYN)]);
      expect(t.packets.map((p) => p.observedSources)).toEqual([['10.10.10.1'], [], []]);
    });
  });

  it('does not modify its inputs', () => {
    const records = recs(3).reverse();
    const observations = [obs({ p: 'udp', src: 'a', pseq: 1 })];
    const snapshot = JSON.stringify([records, observations]);
    buildTimeline(meta('udp'), records, observations);
    expect(JSON.stringify([records, observations])).toBe(snapshot);
  });
});

function timeline(lost: number[], n = 10): Timeline {
  return buildTimeline(meta('udp'), recs(n, lost), []);
}

describe('outages', () => {
  it('none when everything was answered', () => {
    expect(outages(timeline([]))).toEqual([]);
  });

  it('finds each run of lost packets; duration = the gap between the answered packets around it', () => {
    // seq 4..6 lost: last answer before at seq 3 (t+40), first after at seq 7 (t+120).
    expect(outages(timeline([4, 5, 6, 9]))).toEqual([
      { start: T0 + 60, end: T0 + 100, durationMs: 80, lost: 3, firstSeq: 4, lastSeq: 6 },
      { start: T0 + 160, end: T0 + 160, durationMs: 40, lost: 1, firstSeq: 9, lastSeq: 9 },
    ]);
  });

  it('an outage at the start or the end is measured as if one interval bounded it', () => {
    expect(outages(timeline([1, 2]))).toEqual([{ start: T0, end: T0 + 20, durationMs: 60, lost: 2, firstSeq: 1, lastSeq: 2 }]);
    expect(outages(timeline([9, 10]))).toEqual([{ start: T0 + 160, end: T0 + 180, durationMs: 60, lost: 2, firstSeq: 9, lastSeq: 10 }]);
    expect(outages(timeline([1, 2, 3], 3))).toEqual([{ start: T0, end: T0 + 40, durationMs: 80, lost: 3, firstSeq: 1, lastSeq: 3 }]);
  });

  it('uses real send times, not the nominal interval, between answered packets', () => {
    const records = recs(4, [2]);
    records[2]!.t = T0 + 500; // seq 3 was sent late (the sender stalled)
    records[3]!.t = T0 + 520;
    const [o] = outages(buildTimeline(meta('udp'), records, []));
    expect(o).toMatchObject({ firstSeq: 2, lastSeq: 2, durationMs: 500 - 0 });
  });

  it('an empty timeline has no outage', () => {
    expect(outages(buildTimeline(meta('udp'), [], []))).toEqual([]);
  });
});

describe('sourceCounts, leaks, deliveryRatio', () => {
  const t = buildTimeline(
    meta('tcp'),
    recs(4, [3], (seq) => ({ localPort: 40_000 + seq })),
    [
      obs({ p: 'tcp', src: '192.168.1.1', sport: 40_001 }),
      obs({ p: 'tcp', src: '192.168.1.1', sport: 40_002 }),
      obs({ p: 'tcp', src: '10.10.10.2', sport: 40_003 }),
      obs({ p: 'tcp', src: '192.168.1.100', sport: 40_004 }),
      obs({ p: 'tcp', src: '192.168.1.1', sport: 40_004 }),
      obs({ p: 'tcp', src: '10.10.10.2', sport: 55_555 }),
    ],
  );

  it('counts packets per observed source, unattributed observations included', () => {
    expect(sourceCounts(t)).toEqual({ '192.168.1.1': 3, '10.10.10.2': 2, '192.168.1.100': 1 });
  });

  it('leaks: packets and unattributed observations with a source outside the allowed ones', () => {
    const l = leaks(t, ['192.168.1.1', '192.168.1.100']);
    expect(l.packets.map((p) => p.seq)).toEqual([3]);
    expect(l.unattributed.map((o) => o.sport)).toEqual([55_555]);
    const none = leaks(t, ['192.168.1.1', '192.168.1.100', '10.10.10.2']);
    expect(none).toEqual({ packets: [], unattributed: [] });
    // A packet seen with an allowed and a forbidden source is a leak.
    expect(leaks(t, ['192.168.1.100', '10.10.10.2']).packets.map((p) => p.seq)).toEqual([1, 2, 4]);
  });

  it('deliveryRatio is the share of answered packets, 0 for none', () => {
    expect(deliveryRatio(t)).toBe(0.75);
    expect(deliveryRatio(timeline([]))).toBe(1);
    expect(deliveryRatio(buildTimeline(meta('udp'), [], []))).toBe(0);
  });
});

describe('stream timelines (one long-lived TCP connection)', () => {
  const EGRESS = '192.168.1.100';
  /** n lines on connection 1 (local port 40001, seen as EGRESS:40001); `lost` unanswered; `patch` per seq. */
  function stream(n: number, lost: number[] = [], patch: (seq: number) => Partial<ClientRecord> = () => ({})): ClientRecord[] {
    return recs(n, lost, (seq) => ({
      conn: 1,
      localPort: 40001,
      ...(lost.includes(seq) ? { error: 'timeout' } : { observedSource: EGRESS, observedPort: 40001 }),
      ...patch(seq),
    }));
  }

  it('a connection that rides through an outage survived: same connection, same endpoint, answered at the end', () => {
    const t = buildTimeline(meta('tcp'), stream(10, [4, 5, 6]), [obs({ p: 'tcp', src: EGRESS, sport: 40001, t: T0 - 3 })]);
    expect(t.stream).toEqual({
      connections: [{ conn: 1, localPort: 40001, firstSeq: 1, lastSeq: 10, sent: 10, replied: 7, endpoints: [`${EGRESS}:40001`] }],
      survived: true,
      reason: '',
    });
    expect(outages(t)).toHaveLength(1);
    expect(outages(t)[0]).toMatchObject({ firstSeq: 4, lastSeq: 6, lost: 3, durationMs: 80 });
    // the SYN goes to the first line of the connection, the replies to every answered line
    expect(t.packets[0]!.observedSources).toEqual([EGRESS]);
    expect(t.packets[0]).toMatchObject({ conn: 1, localPort: 40001, replyPort: 40001 });
    expect(sourceCounts(t)).toEqual({ [EGRESS]: 7 });
    expect(t.unattributed).toEqual([]);
  });

  it('a broken connection (RST) did not survive, even if a later line went through another one', () => {
    const broken = stream(6, [4, 5, 6], (seq) => (seq >= 4 ? { connectionError: 'ECONNRESET', error: seq === 4 ? 'ECONNRESET' : 'connection broken' } : {}));
    const t = buildTimeline(meta('tcp'), broken, []);
    expect(t.stream!.survived).toBe(false);
    expect(t.stream!.reason).toBe('connection 1 (local port 40001) broke with ECONNRESET at line 4');
    expect(t.stream!.connections[0]).toMatchObject({ brokeWith: 'ECONNRESET', brokeAtSeq: 4, replied: 3 });
    expect(t.packets[4]!.connectionError).toBe('ECONNRESET');

    // with reconnect: line 5 opens connection 2 (new local port) which works: still not survived
    const re = stream(6, [4], (seq) => (seq === 4 ? { connectionError: 'ECONNRESET' } : seq >= 5 ? { conn: 2, localPort: 40002, observedPort: 40002 } : {}));
    const t2 = buildTimeline(meta('tcp'), re, [obs({ p: 'tcp', src: EGRESS, sport: 40002, t: T0 + 80 })]);
    expect(t2.stream!.survived).toBe(false);
    expect(t2.stream!.connections.map((c) => [c.conn, c.localPort, c.endpoints])).toEqual([
      [1, 40001, [`${EGRESS}:40001`]],
      [2, 40002, [`${EGRESS}:40002`]],
    ]);
    expect(t2.stream!.reason).toMatch(/^the stream was carried by 2 connections/);
    // the second SYN is attributed to the first line of connection 2
    expect(t2.packets[4]!.observedSources).toEqual([EGRESS]);
  });

  it('a reconnect on the same local port: each SYN goes to its own connection', () => {
    const re = stream(4, [], (seq) => (seq >= 3 ? { conn: 2 } : {}));
    const t = buildTimeline(meta('tcp'), re, [
      obs({ p: 'tcp', src: '10.10.10.1', sport: 40001, t: T0 + 41 }),
      obs({ p: 'tcp', src: EGRESS, sport: 40001, t: T0 - 1 }),
    ]);
    expect(t.packets[2]!.observedSources).toEqual(['10.10.10.1', EGRESS]);
    expect(t.packets[0]!.observedSources).toEqual([EGRESS]);
    expect(leaks(t, [EGRESS]).packets.map((p) => p.seq)).toEqual([3]);
  });

  it('a changed NAT binding (another source port) or a stream that never recovered did not survive', () => {
    const moved = summarizeStream(
      buildTimeline(
        meta('tcp'),
        stream(4, [], (seq) => (seq >= 3 ? { observedPort: 51000 } : {})),
        [],
      ).packets,
    );
    expect(moved.survived).toBe(false);
    expect(moved.reason).toBe(`connection 1 was seen from ${EGRESS}:40001 then ${EGRESS}:51000 (NAT binding changed)`);
    const hung = summarizeStream(buildTimeline(meta('tcp'), stream(5, [4, 5]), []).packets);
    expect(hung.survived).toBe(false);
    expect(hung.reason).toBe('the last line (5) was not answered: the connection never carried traffic again');
    expect(summarizeStream([]).reason).toBe('no line was sent');
  });

  it('non-stream timelines carry no stream summary and keep their packet shape', () => {
    const t = buildTimeline(
      meta('tcp'),
      recs(2, [], (seq) => ({ localPort: 50000 + seq })),
      [],
    );
    expect(t.stream).toBeUndefined();
    expect(t.packets[0]).toEqual({ seq: 1, t: T0, replied: true, rttMs: 1.5, observedSources: [] });
  });
});
