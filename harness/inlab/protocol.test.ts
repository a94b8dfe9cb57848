import { describe, expect, it } from 'vitest';
import {
  OBSERVED_LOG,
  PROTOS,
  RESPONDER_PORT,
  RUN_DIR,
  STATS_NEEDLE,
  decodeProbe,
  encodeProbe,
  icmpToken,
  isSyn,
  newToken,
  parseObservationLog,
  parseTcpdumpStats,
  probeClientIssues,
  segmentMatters,
  splitReplies,
  synKey,
  type ProbeClientOptions,
} from './protocol.js';
import { TCP_FLAGS } from '../pcap/pcap.js';
import { issueText } from '../util/errors.js';

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

describe('probe client options (probeClientIssues)', () => {
  const base: ProbeClientOptions = {
    to: '8.8.8.8',
    port: 7007,
    proto: 'tcp',
    timeoutMs: 300,
    token: '0123456789abcdef',
    mode: 'continuous',
    intervalMs: 20,
    count: 100,
  };

  it('accepts once, continuous and stream probes', () => {
    expect(probeClientIssues(base)).toEqual([]);
    expect(probeClientIssues({ ...base, mode: 'once', intervalMs: 0, count: 1 })).toEqual([]);
    expect(probeClientIssues({ ...base, proto: 'icmp', port: 0 })).toEqual([]);
    expect(probeClientIssues({ ...base, stream: true })).toEqual([]);
    expect(probeClientIssues({ ...base, stream: true, reconnect: true, localPort: 40001 })).toEqual([]);
  });

  it('says what is wrong with each bad field', () => {
    const cases: [Partial<ProbeClientOptions>, RegExp][] = [
      [{ to: 'example.com' }, /^to: must be an IPv4 address/],
      [{ port: 0 }, /^port: must be a port number/],
      [{ port: 70000 }, /^port: /],
      [{ timeoutMs: 0 }, /^timeoutMs: /],
      [{ token: 'XYZ' }, /^token: /],
      [{ mode: 'often' as 'once' }, /^mode: /],
      [{ intervalMs: 0 }, /^intervalMs: /],
      [{ count: 0 }, /^count: /],
      [{ stream: true, proto: 'udp' }, /^stream: only for continuous TCP/],
      [{ stream: true, mode: 'once' }, /^stream: only for continuous TCP/],
      [{ stream: 'yes' as unknown as boolean }, /^stream: must be true or false/],
      [{ reconnect: true }, /^reconnect: .*only with stream/],
      [{ stream: true, localPort: 0 }, /^localPort: /],
      [{ localPort: 40001 }, /^localPort: .*only with stream/],
    ];
    for (const [patch, re] of cases) {
      const issues = probeClientIssues({ ...base, ...patch }).map(issueText);
      expect(issues.length, JSON.stringify(patch)).toBeGreaterThan(0);
      expect(
        issues.some((i) => re.test(i)),
        `${JSON.stringify(patch)} -> ${issues.join(' | ')}`,
      ).toBe(true);
    }
  });
});

describe('stream replies (splitReplies)', () => {
  const reply = (seq: number) =>
    JSON.stringify({ responder: 'internet', observedSource: '192.168.1.100', observedPort: 40001, token: '0123456789abcdef', seq, t: 1 });

  it('returns complete lines parsed and keeps the unfinished rest', () => {
    const text = `${reply(1)}\n${reply(2)}\n${reply(3).slice(0, 10)}`;
    const r = splitReplies(text);
    expect(r.replies.map((x) => x.seq)).toEqual([1, 2]);
    expect(r.rest).toBe(reply(3).slice(0, 10));
    expect(r.bad).toEqual([]);
    // the rest completes with the next chunk
    expect(splitReplies(`${r.rest}${reply(3).slice(10)}\n`).replies.map((x) => x.seq)).toEqual([3]);
  });

  it('reports lines that are not replies and skips empty ones', () => {
    const r = splitReplies(`garbage\n\n{"x":1}\n${reply(4)}\n`);
    expect(r.replies.map((x) => x.seq)).toEqual([4]);
    expect(r.bad).toEqual(['garbage', '{"x":1}']);
    expect(r.rest).toBe('');
  });
});

describe('the observation log: segments and capture statistics', () => {
  it('isSyn: a SYN without ACK; a TCP record without flags (a SYN-only log) counts as one', () => {
    const { SYN, ACK, PSH, RST } = TCP_FLAGS;
    expect(isSyn({ p: 'tcp', f: SYN })).toBe(true);
    expect(isSyn({ p: 'tcp' })).toBe(true);
    expect(isSyn({ p: 'tcp', f: SYN | ACK })).toBe(false);
    expect(isSyn({ p: 'tcp', f: ACK | PSH })).toBe(false);
    expect(isSyn({ p: 'tcp', f: RST })).toBe(false);
    expect(isSyn({ p: 'udp' })).toBe(false);
  });

  it("segmentMatters: a probe's own segments, every SYN, the first segment of any other flow; never UDP or ICMP filtered", () => {
    const { SYN, ACK, PSH } = TCP_FLAGS;
    const flows = new Set<string>();
    const mine = new Set([40_001]);
    const keep = (src: string, sport: number, f: number) => segmentMatters({ p: 'tcp', src, sport, f }, mine, flows);
    expect([keep('a', 40_001, ACK), keep('a', 40_001, ACK | PSH)]).toEqual([true, true]);
    expect([keep('a', 50_000, SYN), keep('a', 50_000, SYN), keep('a', 50_000, ACK), keep('a', 50_000, ACK | PSH), keep('b', 50_000, ACK)]).toEqual([
      true,
      true,
      true,
      false,
      true,
    ]);
    expect(segmentMatters({ p: 'udp', src: 'a', sport: 1 }, mine, flows)).toBe(true);
    expect(segmentMatters({ p: 'tcp', src: 'a', sport: 50_000 }, mine, flows)).toBe(true); // no flags: a SYN-only log
  });

  it('parseTcpdumpStats reads what tcpdump 4.99 prints on SIGUSR1 and on exit (singular too)', () => {
    expect(parseTcpdumpStats('tcpdump: 2 packets captured, 12 packets received by filter, 0 packets dropped by kernel')).toEqual({
      captured: 2,
      received: 12,
      dropped: 0,
    });
    const exit =
      'tcpdump: listening on any, link-type LINUX_SLL2 (Linux cooked v2), snapshot length 256 bytes\n49 packets captured\n12000 packets received by filter\n11768 packets dropped by kernel\n';
    expect(parseTcpdumpStats(exit)).toEqual({ captured: 49, received: 12000, dropped: 11768 });
    expect(parseTcpdumpStats('1 packet captured\n1 packet received by filter\n1 packet dropped by kernel\n3 packets dropped by interface\n')).toEqual({
      captured: 1,
      received: 1,
      dropped: 1,
    });
    // the last figures win (a log with a SIGUSR1 line, then the exit lines)
    expect(parseTcpdumpStats(`tcpdump: 1 packet captured, 1 packet received by filter, 0 packets dropped by kernel\n${exit}`)).toMatchObject({
      dropped: 11768,
    });
  });

  it('parseTcpdumpStats: nothing without a kernel drop count', () => {
    expect(parseTcpdumpStats('tcpdump: listening on any, link-type LINUX_SLL2')).toBeUndefined();
    expect(parseTcpdumpStats('pcap_stats: socket closed')).toBeUndefined();
    expect(parseTcpdumpStats('')).toBeUndefined();
    expect(parseTcpdumpStats('12 packets captured')).toBeUndefined();
  });

  it('parseObservationLog splits observations from statistics, in the window, skipping torn and blank lines', () => {
    const lines = [
      JSON.stringify({ t: 90, p: 'tcp', src: 'a', dst: 'b', sport: 1, dport: 2, k: 'tcp b:2', f: 2 }), // before the window
      JSON.stringify({ t: 96, p: 'tcp', src: 'a', dst: 'b', sport: 1, dport: 2, k: 'tcp b:2', f: 2 }), // within the 5 ms tolerance
      JSON.stringify({ t: 97, p: 'stats', drops: 0, total: 0, pending: 0 }),
      '',
      '{"t":98,"p":"tcp","src":"a"', // torn
      JSON.stringify({ t: 120, p: 'udp', src: 'a', dst: 'b', tok: 'x', pseq: 1 }),
      JSON.stringify({ t: 130, p: 'stats', drops: 2, total: 2, pending: 1 }),
    ];
    const r = parseObservationLog(lines, 100);
    expect(r.observations.map((o) => [o.t, o.p])).toEqual([
      [96, 'tcp'],
      [120, 'udp'],
    ]);
    expect(r.stats).toEqual([
      { t: 97, p: 'stats', drops: 0, total: 0, pending: 0 },
      { t: 130, p: 'stats', drops: 2, total: 2, pending: 1 },
    ]);
    expect(lines[2]).toContain(STATS_NEEDLE);
  });
});
