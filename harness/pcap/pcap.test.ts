import { describe, expect, it } from 'vitest';
import { encodeProbe, decodeProbe, icmpToken } from '../inlab/protocol.js';
import { LINKTYPE, PcapStreamReader, TCP_FLAGS, decodePacket, describePacket, readPcap, type PcapPacket } from './pcap.js';

// ---- Hand-built packets ---------------------------------------------------------------------

const ipBytes = (ip: string) => ip.split('.').map(Number);
const TOKEN = '0123456789abcdef';

function ipv4(src: string, dst: string, proto: number, l4: Buffer, opts: { ttl?: number; fragOffset?: number } = {}): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + l4.length, 2);
  h.writeUInt16BE(0x1234, 4);
  h.writeUInt16BE((opts.fragOffset ?? 0) & 0x1fff, 6);
  h[8] = opts.ttl ?? 64;
  h[9] = proto;
  Buffer.from(ipBytes(src)).copy(h, 12);
  Buffer.from(ipBytes(dst)).copy(h, 16);
  return Buffer.concat([h, l4]);
}

function tcpSyn(sport: number, dport: number): Buffer {
  const t = Buffer.alloc(20);
  t.writeUInt16BE(sport, 0);
  t.writeUInt16BE(dport, 2);
  t.writeUInt32BE(1000, 4);
  t[12] = 5 << 4;
  t[13] = TCP_FLAGS.SYN;
  t.writeUInt16BE(64240, 14);
  return t;
}

function udp(sport: number, dport: number, payload: Buffer): Buffer {
  const u = Buffer.alloc(8);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([u, payload]);
}

/** What `ping -p <token>` sends: a 16-byte timestamp, then the 8-byte pattern repeated (56 bytes). */
function pingPayload(token: string): Buffer {
  const ts = Buffer.alloc(16, 0xee);
  const pattern = Buffer.from(token, 'hex');
  return Buffer.concat([ts, pattern, pattern, pattern, pattern, pattern]);
}

function icmpEcho(id: number, seq: number, payload: Buffer, type = 8): Buffer {
  const h = Buffer.alloc(8);
  h[0] = type;
  h.writeUInt16BE(id, 4);
  h.writeUInt16BE(seq, 6);
  return Buffer.concat([h, payload]);
}

const MAC_A = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
const MAC_B = [0x02, 0x42, 0xac, 0x11, 0x00, 0x03];

function arpRequest(senderIp: string, targetIp: string): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0); // ethernet
  a.writeUInt16BE(0x0800, 2);
  a[4] = 6;
  a[5] = 4;
  a.writeUInt16BE(1, 6); // request
  Buffer.from(MAC_A).copy(a, 8);
  Buffer.from(ipBytes(senderIp)).copy(a, 14);
  Buffer.from(ipBytes(targetIp)).copy(a, 24);
  return a;
}

function ethernet(etherType: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  Buffer.from(MAC_B).copy(h, 0);
  Buffer.from(MAC_A).copy(h, 6);
  h.writeUInt16BE(etherType, 12);
  return Buffer.concat([h, payload]);
}

/** Linux cooked v1: pkttype, ARPHRD, addr len, addr (8), protocol. */
function sll(etherType: number, pkttype: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt16BE(pkttype, 0);
  h.writeUInt16BE(1, 2);
  h.writeUInt16BE(6, 4);
  Buffer.from(MAC_A).copy(h, 6);
  h.writeUInt16BE(etherType, 14);
  return Buffer.concat([h, payload]);
}

/** Linux cooked v2: protocol, reserved, ifindex, ARPHRD, pkttype, addr len, addr (8). */
function sll2(etherType: number, pkttype: number, ifindex: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(etherType, 0);
  h.writeUInt32BE(ifindex, 4);
  h.writeUInt16BE(1, 8);
  h[10] = pkttype;
  h[11] = 6;
  Buffer.from(MAC_A).copy(h, 12);
  return Buffer.concat([h, payload]);
}

interface Rec {
  sec: number;
  frac: number;
  data: Buffer;
  origLen?: number;
}

function pcapFile(linktype: number, records: Rec[], opts: { bigEndian?: boolean; nanos?: boolean; linktypeHighBits?: number } = {}): Buffer {
  const w32 = (b: Buffer, v: number, o: number) => (opts.bigEndian ? b.writeUInt32BE(v >>> 0, o) : b.writeUInt32LE(v >>> 0, o));
  const w16 = (b: Buffer, v: number, o: number) => (opts.bigEndian ? b.writeUInt16BE(v, o) : b.writeUInt16LE(v, o));
  const g = Buffer.alloc(24);
  w32(g, opts.nanos ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  w16(g, 2, 4);
  w16(g, 4, 6);
  w32(g, 262144, 16);
  w32(g, (linktype | (opts.linktypeHighBits ?? 0)) >>> 0, 20);
  const parts: Buffer[] = [g];
  for (const r of records) {
    const h = Buffer.alloc(16);
    w32(h, r.sec, 0);
    w32(h, r.frac, 4);
    w32(h, r.data.length, 8);
    w32(h, r.origLen ?? r.data.length, 12);
    parts.push(h, r.data);
  }
  return Buffer.concat(parts);
}

// The four packets every link type carries.
const SYN = ipv4('192.168.1.1', '8.8.8.8', 6, tcpSyn(40000, 443));
const UDP_PROBE = ipv4('10.10.10.2', '1.1.1.1', 17, udp(51000, 7007, Buffer.from(encodeProbe(TOKEN, 42))));
const PING = ipv4('192.168.1.1', '9.9.9.9', 1, icmpEcho(0x1f2e, 7, pingPayload(TOKEN)), { ttl: 63 });
const ARP = arpRequest('192.168.1.1', '192.168.1.254');

function checkSyn(d: ReturnType<typeof decodePacket>) {
  expect(d.ip).toMatchObject({ src: '192.168.1.1', dst: '8.8.8.8', proto: 6, ttl: 64 });
  expect(d.ip?.tcp).toMatchObject({ sport: 40000, dport: 443, flags: TCP_FLAGS.SYN });
  expect(d.ip?.tcp?.payload.length).toBe(0);
}
function checkUdp(d: ReturnType<typeof decodePacket>) {
  expect(d.ip).toMatchObject({ src: '10.10.10.2', dst: '1.1.1.1', proto: 17 });
  expect(d.ip?.udp).toMatchObject({ sport: 51000, dport: 7007 });
  expect(decodeProbe(d.ip!.udp!.payload)).toEqual({ token: TOKEN, seq: 42 });
}
function checkPing(d: ReturnType<typeof decodePacket>) {
  expect(d.ip).toMatchObject({ src: '192.168.1.1', dst: '9.9.9.9', proto: 1, ttl: 63 });
  expect(d.ip?.icmp).toMatchObject({ type: 8, code: 0, id: 0x1f2e, seq: 7 });
  expect(d.ip!.icmp!.payload.length).toBe(56);
  expect(icmpToken(d.ip!.icmp!.payload)).toBe(TOKEN);
}
function checkArp(d: ReturnType<typeof decodePacket>) {
  expect(d.ip).toBeUndefined();
  expect(d.arp).toEqual({ op: 1, senderIp: '192.168.1.1', senderMac: '02:42:ac:11:00:02', targetIp: '192.168.1.254' });
}

const cases = [
  {
    name: 'LINUX_SLL2',
    linktype: LINKTYPE.LINUX_SLL2,
    frames: [sll2(0x0800, 4, 7, SYN), sll2(0x0800, 0, 7, UDP_PROBE), sll2(0x0800, 4, 9, PING), sll2(0x0806, 1, 7, ARP)],
    directions: ['out', 'in', 'out', 'in'],
  },
  {
    name: 'LINUX_SLL',
    linktype: LINKTYPE.LINUX_SLL,
    frames: [sll(0x0800, 4, SYN), sll(0x0800, 0, UDP_PROBE), sll(0x0800, 4, PING), sll(0x0806, 1, ARP)],
    directions: ['out', 'in', 'out', 'in'],
  },
  {
    name: 'EN10MB',
    linktype: LINKTYPE.ETHERNET,
    frames: [ethernet(0x0800, SYN), ethernet(0x0800, UDP_PROBE), ethernet(0x0800, PING), ethernet(0x0806, ARP)],
    directions: ['unknown', 'unknown', 'unknown', 'unknown'],
  },
  {
    name: 'RAW',
    linktype: LINKTYPE.RAW,
    frames: [SYN, UDP_PROBE, PING],
    directions: ['unknown', 'unknown', 'unknown'],
  },
] as const;

const records = (frames: readonly Buffer[]): Rec[] => frames.map((data, i) => ({ sec: 1_700_000_000 + i, frac: 250_000 * i, data }));

describe.each(cases)('pcap with linktype $name', ({ linktype, frames, directions }) => {
  const file = pcapFile(linktype, records(frames));

  it('reads every record with its time and link type', () => {
    const packets = readPcap(file);
    expect(packets).toHaveLength(frames.length);
    packets.forEach((p, i) => {
      expect(p.linktype).toBe(linktype);
      expect(p.t).toBe((1_700_000_000 + i) * 1000 + 250 * i);
      expect(p.origLen).toBe(frames[i]!.length);
      expect(p.data.equals(frames[i]!)).toBe(true);
    });
  });

  it('decodes TCP SYN, UDP probe, ICMP echo with a ping payload and ARP, with direction', () => {
    const d = readPcap(file).map(decodePacket);
    checkSyn(d[0]!);
    checkUdp(d[1]!);
    checkPing(d[2]!);
    if (d[3]) checkArp(d[3]);
    expect(d.map((x) => x.direction)).toEqual(directions);
  });

  it('reads incrementally across a chunk boundary at every byte offset', () => {
    const whole = readPcap(file);
    for (let cut = 0; cut <= file.length; cut++) {
      const r = new PcapStreamReader();
      const got = [...r.push(file.subarray(0, cut)), ...r.push(file.subarray(cut))];
      expect(got, `cut at ${cut}`).toEqual(whole);
      expect(r.linktype).toBe(linktype);
    }
  });

  it('reads a stream fed one byte at a time', () => {
    const r = new PcapStreamReader();
    const got: PcapPacket[] = [];
    for (let i = 0; i < file.length; i++) got.push(...r.push(file.subarray(i, i + 1)));
    expect(got).toEqual(readPcap(file));
  });
});

describe('link-layer details', () => {
  it('SLL2 carries the interface index and source MAC', () => {
    const d = decodePacket(readPcap(pcapFile(LINKTYPE.LINUX_SLL2, records([sll2(0x0800, 4, 9, PING)])))[0]!);
    expect(d.ifindex).toBe(9);
    expect(d.srcMac).toBe('02:42:ac:11:00:02');
  });

  it('SLL carries the source MAC', () => {
    const d = decodePacket(readPcap(pcapFile(LINKTYPE.LINUX_SLL, records([sll(0x0800, 0, SYN)])))[0]!);
    expect(d.srcMac).toBe('02:42:ac:11:00:02');
    expect(d.ifindex).toBeUndefined();
  });

  it('Ethernet has both MACs', () => {
    const d = decodePacket(readPcap(pcapFile(LINKTYPE.ETHERNET, records([ethernet(0x0800, SYN)])))[0]!);
    expect(d.srcMac).toBe('02:42:ac:11:00:02');
    expect(d.dstMac).toBe('02:42:ac:11:00:03');
  });

  it('LINKTYPE_IPV4 is raw IPv4 too', () => {
    checkUdp(decodePacket({ t: 0, linktype: LINKTYPE.IPV4, data: UDP_PROBE, origLen: UDP_PROBE.length }));
  });

  it('an unknown link type or a runt frame decodes to time and direction only', () => {
    expect(decodePacket({ t: 5, linktype: 147, data: SYN, origLen: SYN.length })).toEqual({ t: 5, direction: 'unknown' });
    expect(decodePacket({ t: 5, linktype: LINKTYPE.ETHERNET, data: Buffer.alloc(10), origLen: 10 })).toEqual({ t: 5, direction: 'unknown' });
    expect(decodePacket({ t: 5, linktype: LINKTYPE.LINUX_SLL2, data: Buffer.alloc(19), origLen: 19 })).toEqual({ t: 5, direction: 'unknown' });
  });

  it('masks the FCS bits of the link-type field', () => {
    const p = readPcap(pcapFile(LINKTYPE.ETHERNET, records([ethernet(0x0800, SYN)]), { linktypeHighBits: 0x10000000 }));
    expect(p[0]!.linktype).toBe(LINKTYPE.ETHERNET);
  });
});

describe('file header variants', () => {
  it('big-endian files', () => {
    const p = readPcap(pcapFile(LINKTYPE.RAW, records([SYN, UDP_PROBE]), { bigEndian: true }));
    expect(p.map((x) => x.t)).toEqual([1_700_000_000_000, 1_700_000_001_250]);
    checkSyn(decodePacket(p[0]!));
    checkUdp(decodePacket(p[1]!));
  });

  it('nanosecond timestamps', () => {
    const p = readPcap(pcapFile(LINKTYPE.RAW, [{ sec: 10, frac: 123_456_789, data: SYN }], { nanos: true }));
    expect(p[0]!.t).toBeCloseTo(10_123.456789, 6);
  });

  it('refuses a stream that is not pcap', () => {
    expect(() => readPcap(Buffer.alloc(24, 0x41))).toThrow(/not a pcap stream/);
    // pcapng is not classic pcap either.
    const ng = Buffer.alloc(24);
    ng.writeUInt32LE(0x0a0d0d0a, 0);
    expect(() => readPcap(ng)).toThrow(/not a pcap stream \(magic a0d0d0a\)/);
  });

  it('waits for a whole header and whole records', () => {
    const file = pcapFile(LINKTYPE.RAW, records([SYN]));
    const r = new PcapStreamReader();
    expect(r.push(file.subarray(0, 23))).toEqual([]);
    expect(r.linktype).toBe(-1);
    expect(r.push(file.subarray(23, 24 + 16 + 5))).toEqual([]);
    expect(r.linktype).toBe(LINKTYPE.RAW);
    expect(r.push(file.subarray(24 + 16 + 5))).toHaveLength(1);
    expect(r.push(Buffer.alloc(0))).toEqual([]);
  });

  it("returned packets do not alias the caller's chunk", () => {
    const file = pcapFile(LINKTYPE.RAW, records([SYN]));
    const chunk = Buffer.from(file);
    const [p] = new PcapStreamReader().push(chunk);
    chunk.fill(0);
    checkSyn(decodePacket(p!));
  });

  it('an empty capture has no packets', () => {
    expect(readPcap(pcapFile(LINKTYPE.LINUX_SLL2, []))).toEqual([]);
  });
});

describe('IPv4 edge cases', () => {
  const raw = (data: Buffer) => decodePacket({ t: 0, linktype: LINKTYPE.RAW, data, origLen: data.length });

  it('a snapped packet (captured shorter than sent) keeps origLen and decodes what it has', () => {
    const p = readPcap(pcapFile(LINKTYPE.RAW, [{ sec: 1, frac: 0, data: PING.subarray(0, 20 + 8 + 10), origLen: PING.length }]))[0]!;
    expect(p.origLen).toBe(PING.length);
    const d = decodePacket(p);
    expect(d.ip?.icmp).toMatchObject({ id: 0x1f2e, seq: 7 });
    expect(icmpToken(d.ip!.icmp!.payload)).toBeUndefined();
  });

  it('Ethernet padding beyond the IP total length is not payload', () => {
    const padded = Buffer.concat([UDP_PROBE, Buffer.alloc(12, 0xff)]);
    const d = raw(padded);
    expect(d.ip!.udp!.payload.toString('latin1')).toBe(encodeProbe(TOKEN, 42));
  });

  it('a non-first fragment has no layer-4 header', () => {
    const frag = ipv4('10.0.0.1', '10.0.0.2', 17, udp(1, 2, Buffer.from('x')), { fragOffset: 100 });
    const d = raw(frag);
    expect(d.ip).toEqual({ src: '10.0.0.1', dst: '10.0.0.2', proto: 17, ttl: 64 });
  });

  it('honours IP options (IHL > 5)', () => {
    const withOpts = Buffer.from(SYN);
    const opt = Buffer.concat([withOpts.subarray(0, 20), Buffer.from([1, 1, 1, 0]), withOpts.subarray(20)]);
    opt[0] = 0x46;
    opt.writeUInt16BE(opt.length, 2);
    checkSyn(raw(opt));
  });

  it('IPv6 and truncated headers are not IPv4', () => {
    const v6 = Buffer.alloc(40);
    v6[0] = 0x60;
    expect(raw(v6).ip).toBeUndefined();
    expect(raw(SYN.subarray(0, 19)).ip).toBeUndefined();
  });

  it('other protocols keep only the IP header fields', () => {
    const gre = ipv4('10.0.0.1', '10.0.0.2', 47, Buffer.alloc(8));
    expect(raw(gre).ip).toEqual({ src: '10.0.0.1', dst: '10.0.0.2', proto: 47, ttl: 64 });
  });
});

describe('describePacket', () => {
  it('summarises each kind in one line', () => {
    const d = readPcap(pcapFile(LINKTYPE.LINUX_SLL2, records(cases[0].frames))).map(decodePacket);
    expect(d.map(describePacket)).toEqual([
      'TCP 192.168.1.1:40000 > 8.8.8.8:443 flags 0x2',
      `UDP 10.10.10.2:51000 > 1.1.1.1:7007 len ${encodeProbe(TOKEN, 42).length}`,
      'ICMP 192.168.1.1 > 9.9.9.9 type 8 id 7982 seq 7',
      'ARP who-has 192.168.1.254 tell 192.168.1.1 (02:42:ac:11:00:02)',
    ]);
    expect(describePacket({ t: 0, direction: 'unknown' })).toBe('non-IPv4');
    expect(describePacket({ t: 0, direction: 'in', ip: { src: 'a', dst: 'b', proto: 47, ttl: 1 } })).toBe('IP a > b proto 47');
  });
});
